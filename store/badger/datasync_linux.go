package badger

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync writes back f's data and the metadata needed to read it, not its
// timestamps (see logSyncer).
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
