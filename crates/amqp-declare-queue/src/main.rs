fn main() {
    amqp_common::cli::main("amqp-declare-queue", amqp_declare_queue::run)
}
