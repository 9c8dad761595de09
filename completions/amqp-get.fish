complete -c amqp-get -s q -l queue -d 'Queue to take the message from (required)' -r
complete -c amqp-get -s u -l url -d 'Broker to connect to, as amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] or amqps://... (default amqp://guest:guest@localhost:5672/%2f; the AMQP_URL environment variable is used when no connection option is given)' -r
complete -c amqp-get -s s -l server -d 'Broker host name or address (default localhost)' -r
complete -c amqp-get -l port -d 'Broker port (default 5672, or 5671 with TLS)' -r
complete -c amqp-get -l vhost -d 'Virtual host (default /)' -r
complete -c amqp-get -l username -d 'User name (default guest)' -r
complete -c amqp-get -l password -d 'Password (default guest); prefer --authfile, which keeps it out of the process list' -r
complete -c amqp-get -l authfile -d 'Read the user name and password from FILE: two lines, "username:USER" and "password:PASSWORD", each ending with a newline' -r -F
complete -c amqp-get -l heartbeat -d 'Heartbeat interval in seconds, 0 to turn heartbeats off (default 30)' -r
complete -c amqp-get -l connect-timeout -d 'Give up if connecting (DNS, TCP, TLS and the AMQP handshake) takes longer than SECS (default 30)' -r
complete -c amqp-get -l cacert -d 'Also trust the CA certificates in FILE (PEM) when verifying the broker' -r -F
complete -c amqp-get -l cert -d 'Client certificate (PEM), sent when the broker asks for one; needs --key' -r -F
complete -c amqp-get -l key -d 'Private key (PEM) of the client certificate; needs --cert' -r -F
complete -c amqp-get -l ssl -d 'Use TLS (as amqps:// does); the port defaults to 5671'
complete -c amqp-get -l no-default-cert-paths -d 'Trust only --cacert, not the system\'s CA certificates'
complete -c amqp-get -l insecure -d 'Do not verify the broker\'s certificate (insecure: for testing only)'
complete -c amqp-get -s '?' -l help -d 'Show this help and exit'
complete -c amqp-get -l usage -d 'Show every option in brief and exit'
complete -c amqp-get -l version -d 'Show the version and exit'
