complete -c amqp-consume -s q -l queue -d 'Queue to consume from (default: declare a new server-named queue, printed on stderr)' -r
complete -c amqp-consume -s e -l exchange -d 'Bind the queue to this exchange (the queue is declared if it does not exist)' -r
complete -c amqp-consume -s r -l routing-key -d 'Binding keys for --exchange, separated by commas (default: the empty key)' -r
complete -c amqp-consume -s c -l count -d 'Stop after N messages (default: no limit; a negative N means no limit)' -r
complete -c amqp-consume -s p -l prefetch-count -d 'Let the broker send at most N unacknowledged messages ahead (default: --count, else no limit)' -r
complete -c amqp-consume -l on-failure -d 'What to do with the message of a COMMAND that fails (non-zero exit, killed, or cannot be started)' -r -f -a "hold\t'Leave it unacknowledged until amqp-consume exits; the broker then requeues it'
requeue\t'Put it back in the queue at once (basic.nack with requeue)'
reject\t'Drop it, or dead-letter it if the queue has a dead-letter exchange (basic.nack without requeue)'"
complete -c amqp-consume -l idle-timeout -d 'Exit 0 after SECS without a message' -r
complete -c amqp-consume -s j -l jobs -d 'Run up to N commands at once, each message settled by its own command\'s result (default 1)' -r
complete -c amqp-consume -s u -l url -d 'Broker to connect to, as amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] or amqps://... (default amqp://guest:guest@localhost:5672/%2f; the AMQP_URL environment variable is used when no connection option is given)' -r
complete -c amqp-consume -s s -l server -d 'Broker host name or address (default localhost)' -r
complete -c amqp-consume -l port -d 'Broker port (default 5672, or 5671 with TLS)' -r
complete -c amqp-consume -l vhost -d 'Virtual host (default /)' -r
complete -c amqp-consume -l username -d 'User name (default guest)' -r
complete -c amqp-consume -l password -d 'Password (default guest); prefer --authfile, which keeps it out of the process list' -r
complete -c amqp-consume -l authfile -d 'Read the user name and password from FILE: two lines, "username:USER" and "password:PASSWORD", each ending with a newline' -r -F
complete -c amqp-consume -l heartbeat -d 'Heartbeat interval in seconds, 0 to turn heartbeats off (default 30)' -r
complete -c amqp-consume -l connect-timeout -d 'Give up if connecting (DNS, TCP, TLS and the AMQP handshake) takes longer than SECS (default 30)' -r
complete -c amqp-consume -l cacert -d 'Also trust the CA certificates in FILE (PEM) when verifying the broker' -r -F
complete -c amqp-consume -l cert -d 'Client certificate (PEM), sent when the broker asks for one; needs --key' -r -F
complete -c amqp-consume -l key -d 'Private key (PEM) of the client certificate; needs --cert' -r -F
complete -c amqp-consume -s d -l declare -d 'Declare the queue (non-durable, auto-delete) unless it already exists'
complete -c amqp-consume -s x -l exclusive -d 'Declare the queue exclusive to this connection (and auto-delete)'
complete -c amqp-consume -s A -l no-ack -d 'Do not wait for COMMAND\'s result: each message is acknowledged on receipt, so a failed COMMAND loses it'
complete -c amqp-consume -l fail-fast -d 'Stop at the first COMMAND that fails, settle its message by --on-failure and exit with its status (128+N if it was killed by signal N)'
complete -c amqp-consume -l exit-when-empty -d 'Exit 0 as soon as the queue has no message ready for us (also at start)'
complete -c amqp-consume -l export-env -d 'Give COMMAND the message\'s metadata as environment variables: AMQP_ROUTING_KEY, AMQP_EXCHANGE, AMQP_REDELIVERED, AMQP_DELIVERY_TAG, AMQP_<PROPERTY> for each property set (AMQP_CONTENT_TYPE, AMQP_MESSAGE_ID, ...) and AMQP_HEADER_<NAME> for each header'
complete -c amqp-consume -l ssl -d 'Use TLS (as amqps:// does); the port defaults to 5671'
complete -c amqp-consume -l no-default-cert-paths -d 'Trust only --cacert, not the system\'s CA certificates'
complete -c amqp-consume -l insecure -d 'Do not verify the broker\'s certificate (insecure: for testing only)'
complete -c amqp-consume -s '?' -l help -d 'Show this help and exit'
complete -c amqp-consume -l usage -d 'Show every option in brief and exit'
complete -c amqp-consume -l version -d 'Show the version and exit'
