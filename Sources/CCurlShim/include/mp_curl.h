#ifndef MP_CURL_H
#define MP_CURL_H

#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call.
   Each wrapper below names the one typed form it passes through. */

typedef size_t (*mp_curl_io_fn)(char *buffer, size_t size, size_t count, void *userdata);
typedef int (*mp_curl_progress_fn)(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

/* curl_easy_setopt with a long value (flags, timeouts, sizes that fit a long). */
CURLcode mp_curl_set_long(CURL *handle, CURLoption option, long value);
/* curl_easy_setopt with a curl_off_t value (*_LARGE options). */
CURLcode mp_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value);
/* curl_easy_setopt with a C string (copied by libcurl). */
CURLcode mp_curl_set_string(CURL *handle, CURLoption option, const char *value);
/* curl_easy_setopt with a pointer (userdata, curl_slist). */
CURLcode mp_curl_set_pointer(CURL *handle, CURLoption option, void *value);
/* curl_easy_setopt with a read, write or header callback. */
CURLcode mp_curl_set_io(CURL *handle, CURLoption option, mp_curl_io_fn function);
/* curl_easy_setopt with CURLOPT_XFERINFOFUNCTION (and CURLOPT_NOPROGRESS 0, so it is called). */
CURLcode mp_curl_set_progress(CURL *handle, mp_curl_progress_fn function);
/* curl_easy_getinfo for a long result. */
CURLcode mp_curl_info_long(CURL *handle, CURLINFO info, long *value);
/* curl_easy_getinfo for a curl_off_t result. */
CURLcode mp_curl_info_offset(CURL *handle, CURLINFO info, curl_off_t *value);

/* The value a read callback returns to abort the transfer. */
size_t mp_curl_read_abort(void);

#endif
