struct User {
    name: String,
}

#[vaxila::instrument(args(user))]
fn greet(user: &User) -> usize {
    user.name.len()
}

fn main() {
    greet(&User { name: String::new() });
}
