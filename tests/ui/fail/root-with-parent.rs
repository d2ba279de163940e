use vaxila::opentelemetry::Context;

#[vaxila::instrument(parent = cx, root)]
fn work(cx: &Context) {
    let _ = cx;
}

fn main() {
    work(&Context::new());
}
