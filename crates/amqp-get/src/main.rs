fn main() {
    // Writing to a closed pipe ends the tool by SIGPIPE, as it ends the C tool; the message is
    // not acked yet at that point, so the broker requeues it.
    amqp_common::cli::restore_sigpipe();
    amqp_common::cli::main("amqp-get", amqp_get::run)
}
