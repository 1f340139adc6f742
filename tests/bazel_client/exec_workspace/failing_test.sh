#!/bin/bash
echo the failing test says goodbye
exit 1
