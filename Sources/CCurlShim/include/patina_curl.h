// Tiny C shim for what Swift cannot import from libcurl: curl_easy_setopt and
// curl_easy_getinfo are variadic, so each argument type gets its own function.
#ifndef PATINA_CURL_H
#define PATINA_CURL_H

#include <curl/curl.h>

typedef size_t (*patina_curl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*patina_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow,
                                             curl_off_t ultotal, curl_off_t ulnow);

CURLcode patina_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode patina_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
// Strings (copied by libcurl), header lists, buffers and callback contexts.
CURLcode patina_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value);
// CURLOPT_WRITEFUNCTION, CURLOPT_HEADERFUNCTION.
CURLcode patina_curl_setopt_data_callback(CURL *handle, CURLoption option, patina_curl_data_callback callback);
// CURLOPT_XFERINFOFUNCTION.
CURLcode patina_curl_setopt_progress_callback(CURL *handle, patina_curl_progress_callback callback);
CURLcode patina_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

#endif
