#pragma once
#include <string>
std::string Greeting();
