fn main() {
    amqp_common::cli::main("amqp-delete-queue", amqp_delete_queue::run)
}
