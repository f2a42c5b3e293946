// glibc allocator tuning (mallopt), used once by the CLI at start.
#include <malloc.h>
