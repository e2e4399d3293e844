//===- NestingDepth.h - refuse input nested deeper than the parser can take ===//
//
// MLIR's parser, verifier and printer recurse once per level of nested
// attributes, types and regions; input nested 10^4-10^5 levels deep
// overflows the stack and kills the process (through the C ABI, the Python
// process that called it). Every entry point (mixer-opt, the C ABI, the
// fuzzer) first measures the nesting of the text and refuses it beyond a
// depth no real program reaches.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_SUPPORT_NESTINGDEPTH_H
#define MIXIR_SUPPORT_NESTINGDEPTH_H

#include "llvm/ADT/StringRef.h"

#include <cstddef>
#include <string>

namespace mlir::mixer {

/// The deepest nesting of brackets (`(`, `[`, `{`, `<`) the entry points accept.
constexpr size_t kMaxNestingDepth = 256;

/// The deepest bracket nesting of MLIR text, outside string literals and
/// `//` comments (an `->` is an arrow, not a closing bracket), and the byte
/// offset where it is first reached.
inline std::pair<size_t, size_t> nestingDepth(llvm::StringRef text) {
  size_t depth = 0, deepest = 0, at = 0;
  for (size_t i = 0, n = text.size(); i < n; ++i) {
    char c = text[i];
    if (c == '"') { // a string literal, with backslash escapes
      for (++i; i < n && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
    } else if (c == '/' && i + 1 < n && text[i + 1] == '/') {
      while (i < n && text[i] != '\n')
        ++i;
    } else if (c == '(' || c == '[' || c == '{' || c == '<') {
      if (++depth > deepest) {
        deepest = depth;
        at = i;
      }
    } else if (c == ')' || c == ']' || c == '}' || (c == '>' && (i == 0 || text[i - 1] != '-'))) {
      if (depth > 0)
        --depth;
    }
  }
  return {deepest, at};
}

/// An error message if `text` is nested deeper than kMaxNestingDepth, else "".
inline std::string nestingProblem(llvm::StringRef text) {
  auto [deepest, at] = nestingDepth(text);
  if (deepest <= kMaxNestingDepth)
    return "";
  return "input nested " + std::to_string(deepest) + " levels deep (at byte " +
         std::to_string(at) + "); at most " + std::to_string(kMaxNestingDepth) +
         " levels are accepted";
}

} // namespace mlir::mixer

#endif // MIXIR_SUPPORT_NESTINGDEPTH_H
