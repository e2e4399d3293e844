# Retarget the imported `LLVM` target (Debian: the shared libLLVM.so) to static component
# archives, so that mixer-opt and libmixir_c carry their own LLVM and need only libz/libzstd.
# MLIR's static libraries name `LLVM` in their link interface; we keep the name and change
# what it points to: an empty archive plus the components below.
llvm_map_components_to_libnames(MIXIR_LLVM_STATIC_LIBS
  core support nvptxcodegen nvptxdesc nvptxinfo x86codegen x86desc x86info x86asmparser
  orcjit perfjitevents passes ipo target mc asmprinter bitwriter irreader linker transformutils analysis
  frontendopenmp)

set(_mixir_empty_src ${CMAKE_BINARY_DIR}/mixir_empty.c)
file(WRITE ${_mixir_empty_src} "/* intentionally empty: stands in for libLLVM.so */\n")
add_library(mixir_llvm_stub STATIC ${_mixir_empty_src})
set_target_properties(mixir_llvm_stub PROPERTIES ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(_mixir_stub_path ${CMAKE_BINARY_DIR}/lib/libmixir_llvm_stub.a)
# The archive must exist at configure-time-known path before anything links against LLVM.
if(NOT EXISTS ${_mixir_stub_path})
  execute_process(COMMAND ${CMAKE_AR} qc ${_mixir_stub_path})
endif()

foreach(_cfg "" _RELWITHDEBINFO _RELEASE _DEBUG _MINSIZEREL)
  set_target_properties(LLVM PROPERTIES IMPORTED_LOCATION${_cfg} ${_mixir_stub_path})
endforeach()
set_target_properties(LLVM PROPERTIES
  IMPORTED_NO_SONAME TRUE
  INTERFACE_LINK_LIBRARIES "${MIXIR_LLVM_STATIC_LIBS}")

# Debian exports MLIRExecutionEngine as depending on the shared libMLIR.so too;
# linking that next to the static MLIR libraries would register every
# dialect and option twice. Point it at the static libraries it really uses.
set_target_properties(MLIRExecutionEngine PROPERTIES INTERFACE_LINK_LIBRARIES
  "MLIRExecutionEngineUtils;MLIRTargetLLVMIRExport;MLIRLLVMToLLVMIRTranslation;MLIRBuiltinToLLVMIRTranslation;MLIRLLVMDialect;MLIRIR;MLIRSupport;LLVM")
