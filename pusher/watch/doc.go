// Package watch pushes what changes under the origin when it changes.
//
// A Tree keeps inotify watches (fsnotify) on every directory under origin.path; each
// change maps to a scope key, the registered repository holding it or else its
// directory. A Debouncer coalesces keys until they are quiet (push.watch_settle for file
// events, TriggerQuiet for POST /api/v1/push), and the Daemon sends every key due at once
// into one Pusher.PushWith, one push at a time. The Daemon registers as a watcher of the
// origin (db.RegisterWatcher) and beats since when it has seen every change, which lets a
// scheduled push skip the walk; an overflow of the kernel's event queue drops that claim
// and runs a full push.
//
// The kernel bounds the watches of a user (fs.inotify.max_user_watches). When the origin
// has more directories, the daemon logs the command that raises the limit and runs
// without claiming coverage. To raise it for good:
//
//	echo fs.inotify.max_user_watches=N > /etc/sysctl.d/90-regionmirror.conf
//	sysctl --system
//
// with N about twice the origin's directories.
package watch
