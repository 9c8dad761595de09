fn main() {
    // A closed stdout ends the tool by SIGPIPE, as it ends the C tool.
    amqp_common::cli::restore_sigpipe();
    amqp_common::cli::main("amqp-delete-queue", amqp_delete_queue::run)
}
