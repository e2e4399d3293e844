// The pipelines refuse options they cannot honour (before: PTX with
// `.target sm_9999`, empty metadata for format=xyz), and run on a module with
// no mixer op (the strategy's #mixer.target crashed there: the dialect was not
// loaded).
// RUN: not mixer-opt %s --mixer-to-nvvm=chip=sm_9999 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not mixer-opt %s --mixer-to-nvvm=chip=sm_ 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not mixer-opt %s --mixer-to-nvvm=format=xyz 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not mixer-opt %s --mixer-to-nvvm=features=+ptx 2>&1 | FileCheck %s --check-prefix=FEATURES
// RUN: not mixer-opt %s '--mixer-to-nvvm=chip=sm_90a}' 2>&1 | FileCheck %s --check-prefix=SPLICE
// RUN: mixer-opt %s --mixer-to-cpu | FileCheck %s --check-prefix=CPU
// RUN: mixer-opt %s --mixer-to-nvvm | FileCheck %s --check-prefix=NVVM

// CHIP: error: mixer-to-nvvm: chip '{{sm_9999|sm_}}' is not a CUDA architecture the NVPTX backend knows
// FORMAT: error: mixer-to-nvvm: format must be isa (PTX), bin (cubin) or fatbin, got 'xyz'
// FEATURES: error: mixer-to-nvvm: features must be a PTX ISA version like +ptx80, got '+ptx'
// SPLICE: error: mixer-to-nvvm: option value 'sm_90a}' holds a space, quote, brace or comma

// CPU: llvm.func @empty()
// NVVM: func.func @empty()
func.func @empty() {
  return
}
