#include <stdio.h>

int main(void) {
  printf("hi from a remotely compiled binary\n");
  return 0;
}
