package board

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// wdiocGetTimeout is WDIOC_GETTIMEOUT, _IOR('W', 7, int) in linux/watchdog.h.
const wdiocGetTimeout = 0x80045707

// watchdogTimeout asks the device for its timeout; a file that is not a watchdog (the fake one in
// tests) answers ENOTTY and the timeout stays unknown.
func watchdogTimeout(f *os.File) time.Duration {
	var secs int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), wdiocGetTimeout, uintptr(unsafe.Pointer(&secs)))
	if errno != 0 || secs <= 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}
