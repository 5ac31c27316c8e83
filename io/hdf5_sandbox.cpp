// Reader processes for HDF5 files from outside (see hdf5_sandbox.h).
#include "io/hdf5_sandbox.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>

// Defined only when a sanitizer runtime is linked (weak: null otherwise).
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace glimpse {

namespace {

bool g_reader_process = false;

// The caller's ends of all live readers' sockets. A new reader closes its copies of them: a reader
// notices that its caller is done when its socket reaches end of file, which cannot happen while
// another reader still holds a copy of the caller's end.
std::mutex g_sockets_mutex;
std::set<int> g_caller_sockets;

// ---- Wire framing: an 8-byte length, then the bytes.

constexpr uint64_t kMaxFrameBytes = uint64_t{1} << 40;

bool send_all(int socket, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(socket, data, size, MSG_NOSIGNAL);  // no SIGPIPE if the peer is gone
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool send_frame(int socket, const std::string& bytes) {
  const uint64_t size = bytes.size();
  return send_all(socket, reinterpret_cast<const char*>(&size), sizeof size) &&
         send_all(socket, bytes.data(), bytes.size());
}

// The reader's side: blocking reads; false at end of file (the caller has gone).
bool receive_all_blocking(int socket, char* out, size_t size) {
  while (size > 0) {
    ssize_t n = ::recv(socket, out, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool receive_frame_blocking(int socket, std::string& bytes) {
  uint64_t size = 0;
  if (!receive_all_blocking(socket, reinterpret_cast<char*>(&size), sizeof size)) return false;
  if (size > kMaxFrameBytes) return false;
  bytes.resize(size);
  return receive_all_blocking(socket, bytes.data(), bytes.size());
}

// ---- The reader process

// What a failed request sends back: a kind byte and the message, so the caller rethrows the same
// standard exception type the in-process read would have thrown.
void put_error(Wire& answer, char kind, const std::string& message) {
  answer.bytes.clear();
  answer.put(kind);
  answer.put(message);
}

void serve_one(const H5File& file, Wire& request, Wire& answer) {
  const auto op = static_cast<H5Op>(request.get<uint8_t>());
  answer.put('+');
  auto path = [&] { return request.get<std::string>(); };
  switch (op) {
    case H5Op::exists:
      answer.put(file.exists(path()));
      return;
    case H5Op::is_group:
      answer.put(file.is_group(path()));
      return;
    case H5Op::is_dataset:
      answer.put(file.is_dataset(path()));
      return;
    case H5Op::list:
      answer.put(file.list(path()));
      return;
    case H5Op::shape:
      answer.put(file.shape(path()));
      return;
    case H5Op::dtype_name:
      answer.put(file.dtype_name(path()));
      return;
    case H5Op::read:
      answer.put(file.read(path()));
      return;
    case H5Op::read_rows: {
      const std::string name = path();
      const int64_t first = request.get<int64_t>();
      const int64_t count = request.get<int64_t>();
      answer.put(file.read_rows(name, first, count));
      return;
    }
    case H5Op::read_strings:
      answer.put(file.read_strings(path()));
      return;
    case H5Op::attr_names:
      answer.put(file.attr_names(path()));
      return;
    default:
      break;
  }
  // The rest take a path and a second argument.
  const std::string name = path();
  switch (op) {
    case H5Op::read_float:
      answer.put(file.read_float(name, request.get<std::vector<int64_t>>()));
      return;
    case H5Op::read_double:
      answer.put(file.read_double(name, request.get<std::vector<int64_t>>()));
      return;
    case H5Op::read_int64:
      answer.put(file.read_int64(name, request.get<std::vector<int64_t>>()));
      return;
    case H5Op::read_int32:
      answer.put(file.read_int32(name, request.get<std::vector<int64_t>>()));
      return;
    case H5Op::read_uint8:
      answer.put(file.read_uint8(name, request.get<std::vector<int64_t>>()));
      return;
    case H5Op::has_attr:
      answer.put(file.has_attr(name, request.get<std::string>()));
      return;
    case H5Op::read_string_attr:
      answer.put(file.read_string_attr(name, request.get<std::string>()));
      return;
    case H5Op::read_string_array_attr:
      answer.put(file.read_string_array_attr(name, request.get<std::string>()));
      return;
    case H5Op::read_int_attr:
      answer.put(file.read_int_attr(name, request.get<std::string>()));
      return;
    case H5Op::read_double_attr:
      answer.put(file.read_double_attr(name, request.get<std::string>()));
      return;
    default:
      throw std::logic_error("HDF5 reader: unknown request");
  }
}

void answer_request(const H5File* file, const std::string& open_error, char open_error_kind,
                    Wire& request, Wire& answer) {
  try {
    if (!file) {
      put_error(answer, open_error_kind, open_error);
      return;
    }
    serve_one(*file, request, answer);
  } catch (const std::invalid_argument& e) {
    put_error(answer, 'i', e.what());
  } catch (const std::logic_error& e) {
    put_error(answer, 'l', e.what());
  } catch (const std::exception& e) {
    put_error(answer, 'r', e.what());
  }
}

[[noreturn]] void run_reader(int socket, const std::string& path, double timeout_seconds) {
  g_reader_process = true;
  // A crash here is an expected outcome, reported by the caller: no inherited crash handler (a
  // test framework's, a sanitizer's) should print or intercept it. SIGALRM is the watchdog
  // below. Ctrl-C is for the caller to act on; the reader ends when the caller closes its socket.
  for (int fatal : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGALRM, SIGTERM})
    ::signal(fatal, SIG_DFL);
  // Under a sanitizer, an error it finds here ends the reader through the sanitizer's death
  // callback, which a fuzzer sets to record a crash of its own process: not ours to report.
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(nullptr);
  ::signal(SIGINT, SIG_IGN);
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);  // a crash on a hostile file is expected, not a core dump
  // The first answer says whether the file opened.
  std::unique_ptr<H5File> file;
  std::string open_error;
  char open_error_kind = 'r';
  try {
    file = std::make_unique<H5File>(H5File::open_read(path));
  } catch (const std::invalid_argument& e) {
    open_error = e.what();
    open_error_kind = 'i';
  } catch (const std::exception& e) {
    open_error = e.what();
  }
  Wire hello;
  if (file) hello.put('+');
  else put_error(hello, open_error_kind, open_error);
  if (!send_frame(socket, hello.bytes) || !file) ::_exit(0);

  // A watchdog per request: if the caller died while we loop inside HDF5, nobody would kill us.
  const unsigned watchdog = static_cast<unsigned>(std::ceil(3 * timeout_seconds + 5));
  std::string bytes;
  while (receive_frame_blocking(socket, bytes)) {
    ::alarm(watchdog);
    Wire request, answer;
    request.bytes = std::move(bytes);
    answer_request(file.get(), open_error, open_error_kind, request, answer);
    if (!send_frame(socket, answer.bytes)) break;
    ::alarm(0);
  }
  ::_exit(0);  // never run atexit handlers or flush the parent's stdio buffers
}

double timeout_from_environment() {
  if (const char* setting = std::getenv("GLIMPSE_HDF5_SANDBOX_TIMEOUT")) {
    char* end = nullptr;
    double seconds = std::strtod(setting, &end);
    if (end != setting && seconds > 0) return seconds;
  }
  return 10;
}

std::string signal_name(int signal_number) {
  const char* name = ::sigabbrev_np(signal_number);
  return name ? std::string("SIG") + name : "signal " + std::to_string(signal_number);
}

}  // namespace

bool in_hdf5_reader_process() { return g_reader_process; }

bool hdf5_sandbox_enabled() {
  if (g_reader_process) return false;
  const char* setting = std::getenv("GLIMPSE_HDF5_SANDBOX");
  if (setting == nullptr) return true;
  const std::string value = setting;
  return !(value == "0" || value == "off" || value == "no" || value == "false");
}

// ---- Wire

void Wire::put(const std::string& text) {
  put(static_cast<uint64_t>(text.size()));
  bytes += text;
}

void Wire::put(const std::vector<std::string>& values) {
  put(static_cast<uint64_t>(values.size()));
  for (const std::string& value : values) put(value);
}

void Wire::put(const std::vector<H5Child>& children) {
  put(static_cast<uint64_t>(children.size()));
  for (const H5Child& child : children) {
    put(child.name);
    put(static_cast<uint8_t>(child.kind));
  }
}

void Wire::put(const ArrayData& array) {
  put(array.shape);
  put(array.data);
}

void Wire::take(void* out, size_t size) {
  if (size == 0) return;  // an empty vector's data() may be null, which memcpy must not get
  if (size > bytes.size() - position_)
    throw std::runtime_error("HDF5 reader: a malformed answer (internal error)");
  std::memcpy(out, bytes.data() + position_, size);
  position_ += size;
}

size_t Wire::count(size_t element_size) {
  const uint64_t n = get<uint64_t>();
  if (n > (bytes.size() - position_) / std::max<size_t>(element_size, 1))
    throw std::runtime_error("HDF5 reader: a malformed answer (internal error)");
  return static_cast<size_t>(n);
}

void Wire::get(std::string& text) {
  text.resize(count(1));
  take(text.data(), text.size());
}

void Wire::get(std::vector<std::string>& values) {
  values.resize(count(8));
  for (std::string& value : values) get(value);
}

void Wire::get(std::vector<H5Child>& children) {
  children.resize(count(9));
  for (H5Child& child : children) {
    get(child.name);
    child.kind = static_cast<H5ObjectKind>(get<uint8_t>());
  }
}

void Wire::get(ArrayData& array) {
  get(array.shape);
  get(array.data);
}

// ---- H5Reader

H5Reader::H5Reader(const std::string& path) : path_(path), timeout_seconds_(timeout_from_environment()) {
  int ends[2];
  // Held across the fork so the child's copies of HDF5's state and of the registry are consistent.
  std::unique_lock<std::recursive_mutex> library(hdf5_library_mutex());
  std::unique_lock<std::mutex> registry(g_sockets_mutex);
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
    throw std::runtime_error("H5File::open_read: " + path + ": cannot start a reader process (" +
                             std::strerror(errno) + ")");
  pid_ = ::fork();
  if (pid_ < 0) {
    const std::string reason = std::strerror(errno);
    ::close(ends[0]);
    ::close(ends[1]);
    throw std::runtime_error("H5File::open_read: " + path + ": cannot start a reader process (" +
                             reason + ")");
  }
  if (pid_ == 0) {
    ::close(ends[0]);
    for (int other : g_caller_sockets) ::close(other);
    run_reader(ends[1], path, timeout_seconds_);
  }
  ::close(ends[1]);
  socket_ = ends[0];
  g_caller_sockets.insert(socket_);
  registry.unlock();
  library.unlock();
  // The reader's first answer: the file opened, or why not.
  try {
    exchange(Wire{});
  } catch (...) {
    stop();
    throw;
  }
}

H5Reader::~H5Reader() { stop(); }

void H5Reader::stop() {
  if (socket_ >= 0) {
    std::lock_guard<std::mutex> guard(g_sockets_mutex);
    g_caller_sockets.erase(socket_);
    ::close(socket_);  // the reader sees end of file and exits
  }
  socket_ = -1;
  if (pid_ > 0) {
    // It exits at once unless it is stuck inside HDF5; give it a moment, then kill it.
    for (int i = 0; i < 50; ++i) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_ || (done < 0 && errno != EINTR)) {
        pid_ = -1;
        return;
      }
      ::usleep(i < 10 ? 100 : 2000);
    }
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

void H5Reader::fail_dead(const std::string& what) {
  broken_ = what;
  stop();
  throw std::runtime_error("H5File: " + path_ + ": " + what);
}

// Sends the request (none for the first answer, which comes unasked) and waits for the answer,
// giving up when no byte has arrived for timeout_seconds_.
Wire H5Reader::exchange(const Wire& request) {
  std::lock_guard<std::mutex> guard(mutex_);
  if (!broken_.empty())
    throw std::runtime_error("H5File: " + path_ + ": the file cannot be read any more (" +
                             broken_ + ")");
  if (!request.bytes.empty() && !send_frame(socket_, request.bytes))
    fail_dead("the reader process is gone");

  std::string frame;
  uint64_t frame_size = 0;
  bool have_size = false;
  std::string size_bytes;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds_ * 1000));
  char buffer[1 << 16];
  for (;;) {
    if (have_size && frame.size() == frame_size) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      ::kill(pid_, SIGKILL);
      fail_dead("malformed HDF5 file: reading it made no progress for " +
                std::to_string(static_cast<int>(timeout_seconds_)) +
                " s (a corrupt file can make HDF5 loop forever), so the reader process was "
                "stopped; if the file is sound and the machine very slow, raise "
                "GLIMPSE_HDF5_SANDBOX_TIMEOUT");
    }
    pollfd waiting{socket_, POLLIN, 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (ready < 0 && errno != EINTR) fail_dead(std::string("poll failed (") + std::strerror(errno) + ")");
    if (ready <= 0) continue;
    size_t want = have_size ? std::min<uint64_t>(sizeof buffer, frame_size - frame.size())
                            : sizeof(uint64_t) - size_bytes.size();
    ssize_t n = ::recv(socket_, buffer, want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The reader died: collect how.
      int status = 0;
      pid_t done;
      while ((done = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
      }
      pid_ = -1;
      if (done > 0 && WIFSIGNALED(status))
        fail_dead("malformed HDF5 file: reading it crashed the HDF5 library (" +
                  signal_name(WTERMSIG(status)) +
                  ") in the separate reader process; nothing from it was used");
      // Exited without answering: a sanitizer that caught libhdf5 misbehaving ends it this way.
      fail_dead("malformed HDF5 file: reading it crashed the separate reader process (it exited "
                "with status " +
                std::to_string(done > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                " without answering); nothing from it was used");
    }
    deadline = std::chrono::steady_clock::now() +
               std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds_ * 1000));
    if (!have_size) {
      size_bytes.append(buffer, static_cast<size_t>(n));
      if (size_bytes.size() == sizeof(uint64_t)) {
        std::memcpy(&frame_size, size_bytes.data(), sizeof frame_size);
        if (frame_size > kMaxFrameBytes || frame_size == 0) fail_dead("a malformed answer from the reader process");
        have_size = true;
        frame.reserve(static_cast<size_t>(frame_size));
      }
    } else {
      frame.append(buffer, static_cast<size_t>(n));
    }
  }
  Wire answer;
  answer.bytes = std::move(frame);
  const char status = answer.get<char>();
  if (status == '+') return answer;
  const std::string message = answer.get<std::string>();
  if (status == 'i') throw std::invalid_argument(message);
  if (status == 'l') throw std::logic_error(message);
  throw std::runtime_error(message);
}

}  // namespace glimpse
