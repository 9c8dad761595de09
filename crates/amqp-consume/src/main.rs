fn main() {
    amqp_common::cli::main("amqp-consume", amqp_consume::run)
}
