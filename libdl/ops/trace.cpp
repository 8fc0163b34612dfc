// The thread's active tracer (dl/ops/trace.h).
#include "dl/ops/trace.h"

namespace dl::ops {

namespace {
thread_local Tracer* g_tracer = nullptr;
}

TraceGuard::TraceGuard(Tracer* tracer) : previous_(g_tracer) { g_tracer = tracer; }
TraceGuard::~TraceGuard() { g_tracer = previous_; }

namespace detail {
Tracer* active_tracer() { return g_tracer; }

TracePause::TracePause() : paused_(g_tracer) { g_tracer = nullptr; }
void TracePause::resume() {
  if (!active_) return;
  g_tracer = paused_;
  active_ = false;
}
}  // namespace detail

}  // namespace dl::ops
