#include "greeting.h"
std::string Greeting() { return "hello from a remotely cached build"; }
