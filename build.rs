#[path = "build_support/services.rs"]
mod services;

fn main() {
    // The store's build script already says which variables to set.
    services::declare(false);
}
