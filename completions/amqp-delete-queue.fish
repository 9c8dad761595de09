complete -c amqp-delete-queue -s q -l queue -d 'Queue to delete (required, not empty)' -r
complete -c amqp-delete-queue -s u -l url -d 'Broker to connect to, as amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] or amqps://... (default amqp://guest:guest@localhost:5672/%2f; the AMQP_URL environment variable is used when no connection option is given)' -r
complete -c amqp-delete-queue -s s -l server -d 'Broker host name or address (default localhost)' -r
complete -c amqp-delete-queue -l port -d 'Broker port (default 5672, or 5671 with TLS)' -r
complete -c amqp-delete-queue -l vhost -d 'Virtual host (default /)' -r
complete -c amqp-delete-queue -l username -d 'User name (default guest)' -r
complete -c amqp-delete-queue -l password -d 'Password (default guest); prefer --authfile, which keeps it out of the process list' -r
complete -c amqp-delete-queue -l authfile -d 'Read the user name and password from FILE: two lines, "username:USER" and "password:PASSWORD", each ending with a newline' -r -F
complete -c amqp-delete-queue -l heartbeat -d 'Heartbeat interval in seconds, 0 to turn heartbeats off (default 30)' -r
complete -c amqp-delete-queue -l connect-timeout -d 'Give up if connecting (DNS, TCP, TLS and the AMQP handshake) takes longer than SECS (default 30)' -r
complete -c amqp-delete-queue -l cacert -d 'Also trust the CA certificates in FILE (PEM) when verifying the broker' -r -F
complete -c amqp-delete-queue -l cert -d 'Client certificate (PEM), sent when the broker asks for one; needs --key' -r -F
complete -c amqp-delete-queue -l key -d 'Private key (PEM) of the client certificate; needs --cert' -r -F
complete -c amqp-delete-queue -l if-unused -d 'Delete only if the queue has no consumers (otherwise exit 1, 406 in use)'
complete -c amqp-delete-queue -s e -l if-empty -d 'Delete only if the queue holds no messages (otherwise exit 1, 406 not empty)'
complete -c amqp-delete-queue -l ssl -d 'Use TLS (as amqps:// does); the port defaults to 5671'
complete -c amqp-delete-queue -l no-default-cert-paths -d 'Trust only --cacert, not the system\'s CA certificates'
complete -c amqp-delete-queue -l insecure -d 'Do not verify the broker\'s certificate (insecure: for testing only)'
complete -c amqp-delete-queue -s '?' -l help -d 'Show this help and exit'
complete -c amqp-delete-queue -l usage -d 'Show every option in brief and exit'
complete -c amqp-delete-queue -l version -d 'Show the version and exit'
