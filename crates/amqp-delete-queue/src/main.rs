fn main() {
    amqp_delete_queue::main()
}
