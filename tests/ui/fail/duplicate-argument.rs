#[vaxila::instrument(name = "a", name = "b")]
fn work(id: i64) -> i64 {
    id
}

fn main() {
    work(1);
}
