//! The `cabgate` binary: everything lives in the library; this only picks the allocator and hands
//! over the exit code.

/// mimalloc rather than the system allocator: a `check` of a large workspace builds its policy
/// input out of hundreds of thousands of small values, and spends a third of its time in glibc's
/// malloc and free otherwise (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cabgate::cli::main());
}
