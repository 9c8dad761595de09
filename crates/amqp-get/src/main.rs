fn main() {
    amqp_get::main()
}
