#include <iostream>

#include "greeting.h"
int main() { std::cout << Greeting() << std::endl; }
