#[vaxila::instrument(args(id), skip(secret))]
fn work(id: i64, secret: &str) -> usize {
    secret.len() + id as usize
}

fn main() {
    work(1, "");
}
