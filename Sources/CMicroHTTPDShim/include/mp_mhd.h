#ifndef MP_MHD_H
#define MP_MHD_H

#include <sys/socket.h>
#include <microhttpd.h>

/* MHD_start_daemon, MHD_get_connection_info and MHD_get_daemon_info are variadic, which Swift
   cannot call. Each wrapper below names the one typed form it passes through. */

/* A daemon with the state its logger needs. */
struct mp_mhd_server;

/* Called with each message the daemon would log (formatted, at most 511 bytes). */
typedef void (*mp_mhd_log_fn)(void *context, const char *message);
/* MHD_OPTION_URI_LOG_CALLBACK: sees the request target as sent; its result becomes *con_cls. */
typedef void *(*mp_mhd_uri_fn)(void *context, const char *uri, struct MHD_Connection *connection);

/* MHD_start_daemon listening on `address` (port argument unused), with one context pointer for
   every callback and the options MHD_OPTION_SOCK_ADDR, MHD_OPTION_URI_LOG_CALLBACK,
   MHD_OPTION_NOTIFY_COMPLETED, MHD_OPTION_NOTIFY_CONNECTION, MHD_OPTION_EXTERNAL_LOGGER,
   MHD_OPTION_CONNECTION_TIMEOUT and MHD_OPTION_CONNECTION_LIMIT. Returns NULL on failure; the
   reason went to `log`. The result owns the daemon and the logger's state: end it with mp_mhd_stop. */
struct mp_mhd_server *mp_mhd_start(unsigned int flags, const struct sockaddr *address,
                                MHD_AccessHandlerCallback handler,
                                MHD_RequestCompletedCallback completed,
                                MHD_NotifyConnectionCallback connection_notify,
                                mp_mhd_uri_fn uri, mp_mhd_log_fn log, void *context,
                                unsigned int connection_timeout, unsigned int connection_limit);

/* The daemon a started server runs. */
struct MHD_Daemon *mp_mhd_daemon(struct mp_mhd_server *server);

/* MHD_stop_daemon, then frees what mp_mhd_start allocated. */
void mp_mhd_stop(struct mp_mhd_server *server);

/* MHD_get_connection_info(MHD_CONNECTION_INFO_CONNECTION_FD); -1 when unknown. */
int mp_mhd_connection_fd(struct MHD_Connection *connection);

/* MHD_get_connection_info(MHD_CONNECTION_INFO_CLIENT_ADDRESS); NULL when unknown. */
const struct sockaddr *mp_mhd_connection_address(struct MHD_Connection *connection);

/* MHD_get_daemon_info(MHD_DAEMON_INFO_BIND_PORT); 0 when unknown. */
int mp_mhd_bound_port(struct MHD_Daemon *daemon);

#endif
