import CDNNL

/// Parallel loops on GNU OpenMP's thread team, the one oneDNN's primitives
/// run on. Measured on Zen 4 at 2 threads, element-wise passes run on
/// Dispatch's pool gained nothing over one thread: its workers woke into
/// cores that OpenMP's threads, just out of a convolution, were still
/// spinning on. On the same team the threads take turns instead.
enum OpenMPTeam {
    /// The work of one region: tasks handed out through a shared counter, so
    /// a region of fewer threads than tasks (or a nested one, which GNU
    /// OpenMP runs on one thread) still runs every task once.
    private final class Region {
        let body: (Int) -> Void
        let count: Int
        /// The next task, shared by the team's threads (raw memory: an atomic, not a Swift property).
        let next = UnsafeMutablePointer<CLong>.allocate(capacity: 1)

        init(body: @escaping (Int) -> Void, count: Int) {
            self.body = body
            self.count = count
            next.initialize(to: 0)
        }

        deinit { next.deallocate() }
    }

    static func perform(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            let region = Region(body: body, count: count)
            withExtendedLifetime(region) {
                GOMP_parallel({ context in
                    let region = Unmanaged<Region>.fromOpaque(context!).takeUnretainedValue()
                    while true {
                        let task = sccam_next_task(region.next)
                        guard task < region.count else { break }
                        region.body(task)
                    }
                }, Unmanaged.passUnretained(region).toOpaque(), UInt32(max(1, threads)), 0)
            }
        }
    }
}
