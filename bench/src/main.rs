fn main() { println!("sfu-load: not implemented yet"); }
