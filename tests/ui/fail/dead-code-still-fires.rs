#![deny(dead_code)]

#[vaxila::instrument(args(id))]
fn unused(id: i64) -> i64 {
    id
}

fn main() {}
