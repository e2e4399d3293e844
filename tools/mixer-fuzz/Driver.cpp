//===- Driver.cpp - mixer-fuzz: a mutation fuzzer over the compiler -------===//
//
//   mixer-fuzz [options] SEED... (files or directories of .mlir, split at
//                                 "// -----" like -split-input-file)
//
// Mutates the seeds (lit inputs) with text-aware mutations that keep much of
// the input parseable (numbers swapped for boundary values, element types,
// dialect keywords from a dictionary, lines spliced from other seeds, bytes),
// and runs each mutant through FuzzTarget's parse -> verify -> pipelines in a
// forked child with a memory limit and a time limit. A child that dies by a
// signal, exits abnormally (LLVM's fatal errors exit), runs out of memory or
// time is a finding: the input is saved to --crashes with what happened.
// `--replay` runs the seeds themselves (the crash corpus as regression tests).
// Exit status: 0 when nothing was found, 1 otherwise.
//
// Not libFuzzer: Debian's gcc build of LLVM has no coverage-guided engine;
// the same target links into one through LLVMFuzzerTestOneInput
// (scripts/sanitizers.sh, with clang).
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA1.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <random>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace cl = llvm::cl;
using namespace mixir::fuzz;

static cl::list<std::string> seedPaths(cl::Positional, cl::desc("<seed files or directories>"),
                                       cl::OneOrMore);
static cl::opt<unsigned> runs("runs", cl::desc("mutants to try (0: until --seconds)"),
                              cl::init(0));
static cl::opt<unsigned> seconds("seconds", cl::desc("time budget (0: until --runs)"),
                                 cl::init(0));
static cl::opt<unsigned> seed("seed", cl::desc("random seed"), cl::init(1));
static cl::opt<unsigned> timeout("timeout", cl::desc("seconds per input before it is a hang"),
                                 cl::init(60));
static cl::opt<unsigned> memoryMb("memory-mb",
                                  cl::desc("address-space limit per input, MiB (0: none)"),
                                  cl::init(4096));
static cl::opt<std::string> crashDir("crashes", cl::desc("where findings are saved"),
                                     cl::init("fuzz-crashes"));
static cl::opt<std::string> dictPath("dict", cl::desc("dictionary: one token per line"),
                                     cl::init(""));
static cl::opt<bool> replay("replay", cl::desc("run the seeds unmutated, then stop"),
                            cl::init(false));
static cl::opt<unsigned> serializeEvery(
    "serialize-every", cl::desc("let every Nth verified input through the NVPTX backend"),
    cl::init(16));

namespace {

/// Splits a file into the pieces -split-input-file would.
void addSeeds(llvm::StringRef path, std::vector<std::string> &seeds) {
  auto add = [&](llvm::StringRef file) {
    auto buffer = llvm::MemoryBuffer::getFile(file);
    if (!buffer)
      return;
    llvm::SmallVector<llvm::StringRef> pieces;
    (*buffer)->getBuffer().split(pieces, "// -----");
    for (llvm::StringRef piece : pieces)
      if (!piece.trim().empty())
        seeds.push_back(piece.str());
  };
  if (!llvm::sys::fs::is_directory(path)) {
    add(path);
    return;
  }
  std::error_code ec;
  for (llvm::sys::fs::recursive_directory_iterator it(path, ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::StringRef(it->path()).ends_with(".mlir"))
      add(it->path());
}

/// A token with the whitespace that follows it: words ([A-Za-z0-9_.$#%@!-]+),
/// else single characters.
struct Token {
  std::string text, space;
};

std::vector<Token> tokenize(llvm::StringRef s) {
  std::vector<Token> tokens;
  auto word = [](char c) { return llvm::isAlnum(c) || llvm::StringRef("_.$#%@!-").contains(c); };
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t start = i;
    if (word(s[i]))
      while (i < n && word(s[i]))
        ++i;
    else
      ++i;
    size_t end = i;
    while (i < n && llvm::isSpace(s[i]))
      ++i;
    tokens.push_back({s.slice(start, end).str(), s.slice(end, i).str()});
  }
  return tokens;
}

std::string join(const std::vector<Token> &tokens) {
  std::string s;
  for (const Token &t : tokens)
    s += t.text + t.space;
  return s;
}

const char *const kNumbers[] = {
    "0", "1", "-1", "2", "3", "4", "7", "8", "15", "16", "17", "24", "31", "32", "63", "64",
    "65", "127", "128", "129", "255", "256", "257", "1023", "1024", "1025", "4096", "65536",
    "2147483647", "2147483648", "4294967295", "4294967296", "4611686018427387904",
    "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1.0e+38", "nan"};
const char *const kTypes[] = {
    "f16", "bf16", "f32", "f64", "i1", "i8", "i32", "i64", "index", "complex<f32>",
    "complex<f64>", "complex<f16>", "f8E4M3FN", "f8E5M2", "tf32", "f80", "f128",
    "vector<4xf32>", "none", "memref<?xf32>", "tensor<?xf32>", "!llvm.ptr"};

class Mutator {
public:
  Mutator(std::vector<std::string> seeds, std::vector<std::string> dict, unsigned s)
      : seeds(std::move(seeds)), dict(std::move(dict)), rng(s) {}

  std::string next();

private:
  std::vector<std::string> seeds, dict;
  std::mt19937_64 rng;

  size_t below(size_t n) { return n ? rng() % n : 0; }
  template <typename C> const auto &pick(const C &c) { return c[below(std::size(c))]; }

  std::string mutate(const std::string &text) {
    std::vector<Token> tokens = tokenize(text);
    if (tokens.empty())
      return text;
    size_t at = below(tokens.size());
    switch (below(11)) {
    case 0: { // a number for a boundary value
      for (size_t tries = 0; tries < 32; ++tries) {
        size_t i = below(tokens.size());
        if (!tokens[i].text.empty() && llvm::isDigit(tokens[i].text[0])) {
          tokens[i].text = pick(kNumbers);
          break;
        }
      }
      break;
    }
    case 1: { // a shape dimension: NxM, ?xM, an element type after the last x
      for (size_t tries = 0; tries < 32; ++tries) {
        size_t i = below(tokens.size());
        std::string &t = tokens[i].text;
        size_t x = t.find('x');
        if (x == std::string::npos || t.find_first_of("0123456789?") != 0)
          continue;
        t = (below(2) ? std::string("?") : std::string(pick(kNumbers))) + t.substr(x);
        break;
      }
      break;
    }
    case 2: { // an element type
      for (size_t tries = 0; tries < 32; ++tries) {
        size_t i = below(tokens.size());
        llvm::StringRef t = tokens[i].text;
        if (t == "f16" || t == "bf16" || t == "f32" || t == "f64" || t.ends_with("xf32") ||
            t.ends_with("xbf16") || t.ends_with("xf16") || t.ends_with("xf64") ||
            t.ends_with("xi32")) {
          size_t x = t.rfind('x');
          std::string prefix = x == llvm::StringRef::npos || t.starts_with("f") ||
                                       t.starts_with("bf")
                                   ? ""
                                   : t.substr(0, x + 1).str();
          tokens[i].text = prefix + pick(kTypes);
          break;
        }
      }
      break;
    }
    case 3: // a dictionary word
      if (!dict.empty())
        tokens.insert(tokens.begin() + at, {pick(dict), " "});
      break;
    case 4: // drop a token
      tokens.erase(tokens.begin() + at);
      break;
    case 5: { // duplicate a run of tokens
      size_t len = 1 + below(std::min<size_t>(16, tokens.size() - at));
      std::vector<Token> run(tokens.begin() + at, tokens.begin() + at + len);
      tokens.insert(tokens.begin() + at, run.begin(), run.end());
      break;
    }
    case 6: { // a line from another seed
      llvm::SmallVector<llvm::StringRef> mine, theirs;
      llvm::StringRef(text).split(mine, '\n');
      const std::string &other = pick(seeds);
      llvm::StringRef(other).split(theirs, '\n');
      std::string out;
      size_t replaced = below(mine.size());
      for (size_t i = 0; i < mine.size(); ++i)
        out += (i == replaced ? pick(theirs) : mine[i]).str() + "\n";
      return out;
    }
    case 7: { // drop or repeat a line
      llvm::SmallVector<llvm::StringRef> lines;
      llvm::StringRef(text).split(lines, '\n');
      size_t i = below(lines.size());
      bool repeat = below(2);
      std::string out;
      for (size_t j = 0; j < lines.size(); ++j) {
        if (j == i && !repeat)
          continue;
        out += lines[j].str() + "\n";
        if (j == i && repeat)
          out += lines[j].str() + "\n";
      }
      return out;
    }
    case 8: { // swap two tokens
      size_t j = below(tokens.size());
      std::swap(tokens[at].text, tokens[j].text);
      break;
    }
    case 9: { // a byte
      std::string s = join(tokens);
      const char bytes[] = "()[]{}<>:,=?x%@#!\"-0123456789 \n";
      size_t i = below(s.size() + 1);
      char c = bytes[below(sizeof(bytes) - 1)];
      switch (below(3)) {
      case 0:
        s.insert(s.begin() + i, c);
        break;
      case 1:
        if (i < s.size())
          s.erase(s.begin() + i);
        break;
      default:
        if (i < s.size())
          s[i] = c;
      }
      return s;
    }
    default: { // an SSA name for another of the input
      std::vector<size_t> names;
      for (size_t i = 0; i < tokens.size(); ++i)
        if (!tokens[i].text.empty() && tokens[i].text[0] == '%')
          names.push_back(i);
      if (names.size() >= 2)
        tokens[pick(names)].text = tokens[pick(names)].text;
    }
    }
    return join(tokens);
  }
};

std::string Mutator::next() {
  std::string text = pick(seeds);
  unsigned count = 1 + below(4);
  for (unsigned i = 0; i < count; ++i)
    text = mutate(text);
  return text;
}

/// What happened to one input in its child process.
struct Result {
  bool finding = false;
  std::string what;
  int stage = -1;
};

Result runInChild(const std::string &input, bool serialize) {
  int pipe[2];
  if (::pipe(pipe) != 0) {
    perror("pipe");
    exit(2);
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(pipe[0]);
    // (ASan reserves terabytes of shadow address space: no limit under it.)
#if !defined(__SANITIZE_ADDRESS__)
    if (memoryMb) {
      struct rlimit limit;
      limit.rlim_cur = limit.rlim_max = rlim_t(memoryMb) << 20;
      setrlimit(RLIMIT_AS, &limit);
    }
#endif
    alarm(timeout);
    char stage = static_cast<char>(runOne(input, serialize));
    if (write(pipe[1], &stage, 1) != 1)
      _exit(3);
    _exit(0);
  }
  close(pipe[1]);
  char stage = -1;
  ssize_t got = read(pipe[0], &stage, 1);
  close(pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.stage = got == 1 ? stage : -1;
  if (WIFSIGNALED(status)) {
    r.finding = true;
    int sig = WTERMSIG(status);
    r.what = sig == SIGALRM ? "hang (over " + std::to_string(timeout) + " s)"
                            : std::string("signal ") + strsignal(sig);
  } else if (WEXITSTATUS(status) != 0 || got != 1) {
    r.finding = true;
    r.what = "exit status " + std::to_string(WEXITSTATUS(status)) +
             " (an LLVM fatal error, or out of memory under the " + std::to_string(memoryMb) +
             " MiB limit)";
  }
  return r;
}

std::string saveFinding(const std::string &input, const Result &r) {
  llvm::sys::fs::create_directories(crashDir);
  std::string hash = llvm::toHex(llvm::SHA1::hash(llvm::arrayRefFromStringRef(input)), true);
  llvm::SmallString<256> path(crashDir.getValue());
  llvm::sys::path::append(path, "crash-" + hash.substr(0, 16) + ".mlir");
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (!ec)
    os << "// mixer-fuzz finding: " << r.what << "\n" << input;
  return std::string(path);
}

} // namespace

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv, "mixer-fuzz: a mutation fuzzer over mixer-opt's "
                                          "parse, verify and pipelines\n");
  std::vector<std::string> seeds;
  for (const std::string &p : seedPaths)
    addSeeds(p, seeds);
  if (seeds.empty()) {
    llvm::errs() << "mixer-fuzz: no seeds in the given paths\n";
    return 2;
  }
  std::vector<std::string> dict;
  if (!dictPath.empty()) {
    auto buffer = llvm::MemoryBuffer::getFile(dictPath);
    if (!buffer) {
      llvm::errs() << "mixer-fuzz: cannot read --dict " << dictPath << "\n";
      return 2;
    }
    llvm::SmallVector<llvm::StringRef> lines;
    (*buffer)->getBuffer().split(lines, '\n');
    for (llvm::StringRef l : lines)
      if (!l.trim().empty() && !l.trim().starts_with("#"))
        dict.push_back(l.trim().str());
  }
  initialize();

  using clock = std::chrono::steady_clock;
  auto start = clock::now(), lastReport = start;
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };
  unsigned long tried = 0, findings = 0;
  unsigned long stages[4] = {0, 0, 0, 0};
  Mutator mutator(seeds, dict, seed);
  auto report = [&](const char *prefix) {
    llvm::outs() << prefix << "inputs " << tried << " in " << llvm::format("%.0f", elapsed())
                 << " s (" << llvm::format("%.1f", tried / std::max(elapsed(), 1e-9))
                 << "/s): refused " << stages[0] << ", parsed " << stages[1] << ", verified "
                 << stages[2] << ", lowered " << stages[3] << "; findings " << findings << "\n";
    llvm::outs().flush();
  };
  size_t total = replay ? seeds.size() : runs.getValue();
  for (size_t i = 0;; ++i) {
    if (replay ? i >= total
               : ((runs && i >= runs) || (seconds && elapsed() >= seconds) ||
                  (!runs && !seconds && i >= 1000)))
      break;
    std::string input = replay ? seeds[i] : mutator.next();
    // Every serializeEvery-th input that may verify goes through the NVPTX
    // backend too (it dominates the time of an input that lowers).
    bool serialize = serializeEvery && (i % serializeEvery == 0);
    Result r = runInChild(input, serialize);
    ++tried;
    if (r.stage >= 0 && r.stage < 4)
      ++stages[r.stage];
    if (r.finding) {
      ++findings;
      std::string path = saveFinding(input, r);
      llvm::outs() << "FINDING: " << r.what << ": " << path << "\n";
    }
    if (std::chrono::duration<double>(clock::now() - lastReport).count() >= 10) {
      report("#");
      lastReport = clock::now();
    }
  }
  report(replay ? "replayed " : "done: ");
  return findings ? 1 : 0;
}
