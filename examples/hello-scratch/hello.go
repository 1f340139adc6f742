// A static Go program for an image that holds nothing else.
package main

import "fmt"

func main() {
	fmt.Println("Hello world!")
}
