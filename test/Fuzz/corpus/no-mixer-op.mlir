// Found while fixing issue 15: both pipelines segfaulted on a module without a
// mixer op (the strategy built #mixer.target before the dialect was loaded).
func.func @empty() {
  return
}
