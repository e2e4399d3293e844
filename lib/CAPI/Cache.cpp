//===- Cache.cpp - the compile cache of libmixir_c ------------------------===//
//
// Memory, then disk, then the compiler; one cache for every frontend (the C++
// torch ops compile on a miss through it, Python's mixir.cache is a view of
// it). The key is a SHA-256 of the compiler build (its GNU build id, so a
// rebuilt library never reuses older entries), the target, the pipeline
// options and the IR. A disk entry, $MIXIR_CACHE_DIR/<key>/ (default
// ~/.cache/mixir), holds the module as the pipeline left it (lowered.mlir:
// host code with the GPU binary embedded), the source IR and metadata.json;
// reloading it runs no pass. Entries are written into a private temporary
// directory and renamed into place, so processes compiling the same kernel at
// once never see or leave a partial entry. Modules live as long as the
// process (callers keep their function addresses).
//
//===----------------------------------------------------------------------===//

#include "Module.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <mutex>
#include <unistd.h>
#include <unordered_map>

namespace {

std::mutex cacheMutex;
std::unordered_map<std::string, MixirModule *> memory;
std::atomic<uint64_t> memoryHits{0}, diskHits{0}, compiles{0};

/// The GNU build id of this library (or, without one, a hash of its file):
/// what tells one compiler build from another.
const std::string &compilerIdentity() {
  static const std::string identity = [] {
    Dl_info info;
    std::string id;
    if (dladdr(reinterpret_cast<void *>(&compilerIdentity), &info) && info.dli_fbase) {
      struct Search {
        const void *base;
        std::string id;
      } search{info.dli_fbase, ""};
      dl_iterate_phdr(
          [](struct dl_phdr_info *phdr, size_t, void *data) -> int {
            auto *s = static_cast<Search *>(data);
            for (int i = 0; i < phdr->dlpi_phnum; ++i) {
              const ElfW(Phdr) &h = phdr->dlpi_phdr[i];
              if (h.p_type != PT_LOAD || h.p_offset != 0)
                continue;
              if (reinterpret_cast<const void *>(phdr->dlpi_addr + h.p_vaddr) != s->base)
                return 0;
            }
            for (int i = 0; i < phdr->dlpi_phnum; ++i) {
              const ElfW(Phdr) &h = phdr->dlpi_phdr[i];
              if (h.p_type != PT_NOTE)
                continue;
              const char *p = reinterpret_cast<const char *>(phdr->dlpi_addr + h.p_vaddr);
              const char *end = p + h.p_memsz;
              while (p + sizeof(ElfW(Nhdr)) <= end) {
                auto *note = reinterpret_cast<const ElfW(Nhdr) *>(p);
                const char *name = p + sizeof(ElfW(Nhdr));
                const char *desc = name + ((note->n_namesz + 3) & ~3u);
                if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                    std::memcmp(name, "GNU", 4) == 0) {
                  s->id = llvm::toHex(llvm::StringRef(desc, note->n_descsz), /*LowerCase=*/true);
                  return 1;
                }
                p = desc + ((note->n_descsz + 3) & ~3u);
              }
            }
            return 0;
          },
          &search);
      id = search.id;
      if (id.empty() && info.dli_fname) {
        if (auto file = llvm::MemoryBuffer::getFile(info.dli_fname))
          id = llvm::toHex(llvm::SHA256::hash(llvm::arrayRefFromStringRef((*file)->getBuffer())),
                           true);
      }
    }
    return std::string(mixir_version()) + "-" + id;
  }();
  return identity;
}

std::string cacheKey(llvm::StringRef ir, llvm::StringRef target, llvm::StringRef options) {
  llvm::SHA256 h;
  for (llvm::StringRef part : {llvm::StringRef(compilerIdentity()), target, options, ir}) {
    h.update(part);
    h.update(llvm::StringRef("\0", 1));
  }
  return llvm::toHex(h.final(), /*LowerCase=*/true);
}

std::string sha256Hex(llvm::StringRef text) {
  return llvm::toHex(llvm::SHA256::hash(llvm::arrayRefFromStringRef(text)), /*LowerCase=*/true);
}

std::string cacheDirectory() {
  if (const char *dir = std::getenv("MIXIR_CACHE_DIR"); dir && *dir)
    return dir;
  const char *home = std::getenv("HOME");
  llvm::SmallString<256> path(home && *home ? home : "/tmp");
  llvm::sys::path::append(path, ".cache", "mixir");
  return std::string(path);
}

bool diskDisabled() {
  const char *v = std::getenv("MIXIR_CACHE_DISABLE");
  return v && std::strcmp(v, "1") == 0;
}

std::string metadataWithKey(const MixirModule &m, llvm::StringRef key, llvm::StringRef target,
                            llvm::StringRef options) {
  llvm::json::Object meta;
  if (auto parsed = llvm::json::parse(m.metadata))
    if (auto *object = parsed->getAsObject())
      meta = std::move(*object);
  meta["key"] = key.str();
  meta["options"] = options.str();
  meta["compiler"] = compilerIdentity();
  meta["compile_target"] = target.str();
  // What loadEntry checks before it trusts the entry.
  meta["lowered_sha256"] = sha256Hex(m.ir);
  llvm::json::Array dims;
  for (int32_t d : m.staticDims)
    dims.push_back(d);
  meta["static_dims"] = std::move(dims);
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::formatv("{0:1}", llvm::json::Value(std::move(meta)));
  return out;
}

/// Writes the entry into a private directory and renames it into place
/// (atomic; a concurrent writer that got there first wins). Errors are
/// ignored: a read-only or full disk must not fail a compile.
void writeEntry(const std::string &root, const std::string &key, const MixirModule &m,
                llvm::StringRef ir, llvm::StringRef target, llvm::StringRef options) {
  llvm::SmallString<256> final(root);
  llvm::sys::path::append(final, key);
  if (llvm::sys::fs::exists(final) || llvm::sys::fs::create_directories(root))
    return;
  llvm::SmallString<256> tmp(root);
  llvm::sys::path::append(tmp, ".tmp." + std::to_string(getpid()) + "." + key + ".%%%%%%%%");
  llvm::SmallString<256> dir;
  if (llvm::sys::fs::createUniqueDirectory(tmp, dir))
    return;
  auto write = [&](llvm::StringRef name, llvm::StringRef text) {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, name);
    std::error_code ec;
    llvm::raw_fd_ostream os(p, ec);
    if (!ec)
      os << text;
    return !ec;
  };
  bool ok = write("lowered.mlir", m.ir) && write("source.mlir", ir) &&
            write("metadata.json", metadataWithKey(m, key, target, options));
  if (!ok || llvm::sys::fs::rename(dir, final)) {
    llvm::sys::fs::remove_directories(dir);
  }
}

/// Moves a bad entry out of the way (a rename, atomic against concurrent
/// readers, then removal) so that the compile that follows can replace it.
void discardEntry(const std::string &root, llvm::StringRef dir) {
  llvm::SmallString<256> aside(root);
  llvm::sys::path::append(aside, ".bad." + std::to_string(getpid()) + ".%%%%%%%%");
  llvm::SmallString<256> unique;
  llvm::sys::fs::createUniquePath(aside, unique, /*MakeAbsolute=*/false);
  if (!llvm::sys::fs::rename(dir, unique))
    llvm::sys::fs::remove_directories(unique);
}

/// A disk entry, reloaded (no pass runs), or null if absent. An entry is
/// trusted only when its metadata names this key and this compiler build and
/// the checksum of its lowered module matches; a truncated, corrupt or foreign
/// entry (or one that fails to load) is discarded, to be recompiled and
/// replaced by the caller.
MixirModule *loadEntry(const std::string &root, const std::string &key, const char *target,
                       const char *runtime) {
  llvm::SmallString<256> dir(root);
  llvm::sys::path::append(dir, key);
  if (!llvm::sys::fs::is_directory(dir))
    return nullptr;
  llvm::SmallString<256> lowered(dir), meta(dir);
  llvm::sys::path::append(lowered, "lowered.mlir");
  llvm::sys::path::append(meta, "metadata.json");
  auto text = llvm::MemoryBuffer::getFile(lowered);
  auto metaText = llvm::MemoryBuffer::getFile(meta);
  const llvm::json::Object *object = nullptr;
  llvm::Expected<llvm::json::Value> parsed =
      metaText ? llvm::json::parse((*metaText)->getBuffer())
               : llvm::Expected<llvm::json::Value>(llvm::json::Value(nullptr));
  if (!parsed)
    llvm::consumeError(parsed.takeError());
  else
    object = parsed->getAsObject();
  auto field = [&](llvm::StringRef name) {
    std::optional<llvm::StringRef> v = object ? object->getString(name) : std::nullopt;
    return v ? v->str() : std::string();
  };
  bool trusted = text && object && field("key") == key &&
                 field("compiler") == compilerIdentity() &&
                 field("lowered_sha256") == sha256Hex((*text)->getBuffer());
  MixirModule *m = nullptr;
  if (trusted) {
    char *error = nullptr;
    m = mixir::compileOrLoad((*text)->getBufferStart(), (*text)->getBufferSize(), target,
                             nullptr, runtime, /*runPipeline=*/false, &error);
    if (error)
      mixir_free_string(error);
  }
  if (!m) {
    discardEntry(root, dir);
    return nullptr;
  }
  if (auto *dims = object->getArray("static_dims"))
    for (const llvm::json::Value &d : *dims)
      if (auto v = d.getAsInteger())
        m->staticDims.push_back(static_cast<int32_t>(*v));
  return m;
}

} // namespace

namespace mixir {

/// The cache behind mixir_compile_cached; `prepare` runs on a fresh compile
/// before the module is published (the call builder records its static dims).
MixirModule *compileCached(llvm::StringRef ir, const char *target, const char *options,
                           const char *runtime, char **error,
                           llvm::function_ref<void(MixirModule &)> prepare) {
  std::string opts = options ? options : "";
  std::string key = cacheKey(ir, target ? target : "", opts);
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = memory.find(key);
    if (it != memory.end()) {
      ++memoryHits;
      return it->second;
    }
  }
  std::string root = cacheDirectory();
  MixirModule *m = diskDisabled() ? nullptr : loadEntry(root, key, target, runtime);
  if (m) {
    ++diskHits;
  } else {
    m = compileOrLoad(ir.data(), ir.size(), target, options, runtime, /*runPipeline=*/true, error);
    if (!m)
      return nullptr;
    ++compiles;
    if (prepare)
      prepare(*m);
    if (!diskDisabled())
      writeEntry(root, key, *m, ir, target, opts);
  }
  m->cached = true;
  std::lock_guard<std::mutex> lock(cacheMutex);
  auto [it, inserted] = memory.emplace(key, m);
  if (!inserted) {
    m->cached = false;
    mixir_module_destroy(m); // another thread compiled it meanwhile
  }
  return it->second;
}

} // namespace mixir

extern "C" {

MixirModule *mixir_compile_cached(const char *ir, size_t ir_len, const char *target,
                                  const char *options, const char *runtime_library,
                                  char **error) {
  if (!ir || !target) {
    if (error)
      *error = mixir::copyString("mixir_compile_cached: ir and target must not be NULL");
    return nullptr;
  }
  return mixir::compileCached(llvm::StringRef(ir, ir_len), target, options, runtime_library, error,
                              {});
}

char *mixir_cache_key(const char *ir, size_t ir_len, const char *target, const char *options) {
  return mixir::copyString(
      cacheKey(llvm::StringRef(ir ? ir : "", ir ? ir_len : 0), target ? target : "",
               options ? options : ""));
}

void mixir_cache_stats(uint64_t out[3]) {
  out[0] = memoryHits;
  out[1] = diskHits;
  out[2] = compiles;
}

void mixir_cache_clear_memory(void) {
  std::lock_guard<std::mutex> lock(cacheMutex);
  // The modules stay alive (callers may hold their functions); the next
  // lookup goes to the disk again.
  memory.clear();
}

} // extern "C"
