fn main() {
    amqp_declare_queue::main()
}
