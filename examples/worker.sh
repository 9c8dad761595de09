#!/bin/sh
# The tutorial's worker (worker.py), in POSIX sh so it needs no Python: amqp-consume runs it once
# per message with the message body on stdin. It prints the first line and "works" for a while.
#   WORKER_SLEEP  seconds to sleep (default 10, as in the tutorial)
IFS= read -r first || [ -n "$first" ]
echo "Processing $first"
sleep "${WORKER_SLEEP:-10}"
