#![deny(unused_must_use)]

#[vaxila::instrument]
#[must_use]
fn work(id: i64) -> i64 {
    id
}

fn main() {
    work(1);
}
