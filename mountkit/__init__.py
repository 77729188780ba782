"""mountkit: a Linux mount engine over direct syscalls."""
