#[vaxila::instrument(args(..), skip(user))]
fn work(id: i64) -> i64 {
    id
}

fn main() {
    work(1);
}
