// libpq, the PostgreSQL client library, for the many-workers journal. Only non-variadic functions
// are used (PQconnectdbParams, PQexecParams, PQreset…), so no C wrapper is needed.
#include <libpq-fe.h>
