package preproc

import (
	"runtime"
	"sync"
)

// maxWorkers bounds the goroutines that share one pass over a series or one resampling.
const maxWorkers = 4

// workers is how many goroutines share work of size n: one below threshold, else one per core
// up to maxWorkers (the callers merge their results exactly, so the count never changes one).
func workers(n, threshold int) int {
	if n < threshold {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), maxWorkers))
}

// spread runs fn over [0, n) in k contiguous chunks, one goroutine each, and waits for them.
func spread(k, n int, fn func(w, from, to int)) {
	if k <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, w*n/k, (w+1)*n/k)
		}()
	}
	fn(0, 0, n/k)
	wg.Wait()
}
