fn main() {
    amqp_common::cli::main("amqp-publish", amqp_publish::run)
}
