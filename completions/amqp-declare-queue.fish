complete -c amqp-declare-queue -s q -l queue -d 'Queue to declare (required); "" lets the broker choose a name, which is printed' -r
complete -c amqp-declare-queue -l queue-type -d 'Queue type, sent as the x-queue-type argument (default: the broker\'s, normally classic). quorum and stream queues are always durable, so they imply -d' -r -f -a "classic\t''
quorum\t''
stream\t''"
complete -c amqp-declare-queue -l arg -d 'Queue argument KEY=VALUE, repeatable (e.g. x-max-length=10, x-message-ttl=60000, x-dead-letter-exchange=dlx). Whole numbers are sent as signed 64-bit integers, true/false as booleans, anything else as a string' -r
complete -c amqp-declare-queue -s u -l url -d 'Broker to connect to, as amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] or amqps://... (default amqp://guest:guest@localhost:5672/%2f; the AMQP_URL environment variable is used when no connection option is given)' -r
complete -c amqp-declare-queue -s s -l server -d 'Broker host name or address (default localhost)' -r
complete -c amqp-declare-queue -l port -d 'Broker port (default 5672, or 5671 with TLS)' -r
complete -c amqp-declare-queue -l vhost -d 'Virtual host (default /)' -r
complete -c amqp-declare-queue -l username -d 'User name (default guest)' -r
complete -c amqp-declare-queue -l password -d 'Password (default guest); prefer --authfile, which keeps it out of the process list' -r
complete -c amqp-declare-queue -l authfile -d 'Read the user name and password from FILE: two lines, "username:USER" and "password:PASSWORD", each ending with a newline' -r -F
complete -c amqp-declare-queue -l heartbeat -d 'Heartbeat interval in seconds, 0 to turn heartbeats off (default 30)' -r
complete -c amqp-declare-queue -l connect-timeout -d 'Give up if connecting (DNS, TCP, TLS and the AMQP handshake) takes longer than SECS (default 30)' -r
complete -c amqp-declare-queue -l cacert -d 'Also trust the CA certificates in FILE (PEM) when verifying the broker' -r -F
complete -c amqp-declare-queue -l cert -d 'Client certificate (PEM), sent when the broker asks for one; needs --key' -r -F
complete -c amqp-declare-queue -l key -d 'Private key (PEM) of the client certificate; needs --cert' -r -F
complete -c amqp-declare-queue -s d -l durable -d 'Make the queue durable (it survives a broker restart); implied by --queue-type quorum and stream'
complete -c amqp-declare-queue -l auto-delete -d 'Make the queue auto-delete: the broker deletes it when its last consumer goes away'
complete -c amqp-declare-queue -l passive -d 'Only check that the queue exists (and print its name); create nothing. Exit 1 if it does not exist'
complete -c amqp-declare-queue -l ssl -d 'Use TLS (as amqps:// does); the port defaults to 5671'
complete -c amqp-declare-queue -l no-default-cert-paths -d 'Trust only --cacert, not the system\'s CA certificates'
complete -c amqp-declare-queue -l insecure -d 'Do not verify the broker\'s certificate (insecure: for testing only)'
complete -c amqp-declare-queue -s '?' -l help -d 'Show this help and exit'
complete -c amqp-declare-queue -l usage -d 'Show every option in brief and exit'
complete -c amqp-declare-queue -l version -d 'Show the version and exit'
