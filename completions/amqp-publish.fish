complete -c amqp-publish -s e -l exchange -d 'Exchange to publish to (default: the default exchange "", which routes by queue name). At least one of -e and -r is required' -r
complete -c amqp-publish -s r -l routing-key -d 'Routing key (default ""); with the default exchange, the name of the target queue' -r
complete -c amqp-publish -s C -l content-type -d 'content_type property (e.g. text/plain, application/json)' -r
complete -c amqp-publish -s E -l content-encoding -d 'content_encoding property (e.g. gzip)' -r
complete -c amqp-publish -s t -l reply-to -d 'reply_to property: the queue a reply should go to' -r
complete -c amqp-publish -s H -l header -d 'Add a header "KEY: VALUE" (string value; split at the first \':\', spaces after it dropped). Repeatable; headers are sent in the order given, a repeated KEY included' -r
complete -c amqp-publish -s b -l body -d 'Message body, taken byte for byte (no newline added); stdin is not read' -r
complete -c amqp-publish -l priority -d 'priority property, 0 to 255 (used by queues with x-max-priority)' -r
complete -c amqp-publish -l expiration -d 'expiration property: per-message TTL in milliseconds (digits only)' -r
complete -c amqp-publish -l message-id -d 'message_id property' -r
complete -c amqp-publish -l correlation-id -d 'correlation_id property (e.g. to match a reply to its request)' -r
complete -c amqp-publish -l type -d 'type property (message type name)' -r
complete -c amqp-publish -l app-id -d 'app_id property (name of the publishing application)' -r
complete -c amqp-publish -l user-id -d 'user_id property; RabbitMQ refuses the message unless it is the connection\'s user' -r
complete -c amqp-publish -l timestamp -d 'timestamp property, in seconds since the Unix epoch, or "now"' -r
complete -c amqp-publish -s u -l url -d 'Broker to connect to, as amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST] or amqps://... (default amqp://guest:guest@localhost:5672/%2f; the AMQP_URL environment variable is used when no connection option is given)' -r
complete -c amqp-publish -s s -l server -d 'Broker host name or address (default localhost)' -r
complete -c amqp-publish -l port -d 'Broker port (default 5672, or 5671 with TLS)' -r
complete -c amqp-publish -l vhost -d 'Virtual host (default /)' -r
complete -c amqp-publish -l username -d 'User name (default guest)' -r
complete -c amqp-publish -l password -d 'Password (default guest); prefer --authfile, which keeps it out of the process list' -r
complete -c amqp-publish -l authfile -d 'Read the user name and password from FILE: two lines, "username:USER" and "password:PASSWORD", each ending with a newline' -r -F
complete -c amqp-publish -l heartbeat -d 'Heartbeat interval in seconds, 0 to turn heartbeats off (default 30)' -r
complete -c amqp-publish -l connect-timeout -d 'Give up if connecting (DNS, TCP, TLS and the AMQP handshake) takes longer than SECS (default 30)' -r
complete -c amqp-publish -l cacert -d 'Also trust the CA certificates in FILE (PEM) when verifying the broker' -r -F
complete -c amqp-publish -l cert -d 'Client certificate (PEM), sent when the broker asks for one; needs --key' -r -F
complete -c amqp-publish -l key -d 'Private key (PEM) of the client certificate; needs --cert' -r -F
complete -c amqp-publish -s p -l persistent -d 'Persistent message (delivery_mode 2; otherwise 1): it survives a broker restart when it sits in a durable queue'
complete -c amqp-publish -s l -l line-buffered -d 'One message per stdin line, each with its newline; lines are published as they arrive (lines over 32767 bytes are split). Cannot be combined with -b'
complete -c amqp-publish -l no-confirm -d 'Do not ask the broker to confirm each message (as the C tool): exit 0 then says the broker received every message and reported no error, not that it stored them'
complete -c amqp-publish -l mandatory -d 'Fail (exit 1) when a message cannot be routed to any queue, instead of letting the broker drop it'
complete -c amqp-publish -l ssl -d 'Use TLS (as amqps:// does); the port defaults to 5671'
complete -c amqp-publish -l no-default-cert-paths -d 'Trust only --cacert, not the system\'s CA certificates'
complete -c amqp-publish -l insecure -d 'Do not verify the broker\'s certificate (insecure: for testing only)'
complete -c amqp-publish -s '?' -l help -d 'Show this help and exit'
complete -c amqp-publish -l usage -d 'Show every option in brief and exit'
complete -c amqp-publish -l version -d 'Show the version and exit'
