//===- FuzzTarget.h - one fuzz input through the compiler -------*- C++ -*-===//
//
// What mixer-fuzz (and a libFuzzer build, through LLVMFuzzerTestOneInput)
// runs per input: the entry points' nesting check, parse, verify, then every
// registered pipeline a frontend uses. Diagnostics are the expected answer to
// a bad input and are discarded; a crash, an abort, a hang or running out of
// memory is a finding.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_TOOLS_MIXER_FUZZ_FUZZTARGET_H
#define MIXIR_TOOLS_MIXER_FUZZ_FUZZTARGET_H

#include "llvm/ADT/StringRef.h"

namespace mixir::fuzz {

/// How far an input got: refused by the parser (or the nesting check), parsed
/// but refused by a verifier, verified but refused by every pipeline, or
/// lowered by at least one.
enum class Stage { Refused, Parsed, Verified, Lowered };

/// Registers the dialects, passes and pipelines (once per process, before any
/// input; the driver forks after it).
void initialize();

/// Runs `text` through parse -> verify -> the pipelines. `serialize`: let the
/// GPU pipeline emit PTX (the NVPTX backend; slower) rather than stop at NVVM.
Stage runOne(llvm::StringRef text, bool serialize);

} // namespace mixir::fuzz

#endif // MIXIR_TOOLS_MIXER_FUZZ_FUZZTARGET_H
