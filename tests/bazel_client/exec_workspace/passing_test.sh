#!/bin/bash
[ "$(echo ok)" = ok ] && echo the passing test ran
