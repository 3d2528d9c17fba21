#[path = "../../build_support/services.rs"]
mod services;

fn main() {
    // Re-embed the migrations when they change.
    println!("cargo:rerun-if-changed=../../migrations");
    services::declare(true);
}
