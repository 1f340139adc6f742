#!/bin/bash
echo started; sleep 60
