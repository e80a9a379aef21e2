/* The libvips side of the thumbq benchmark: what a good libvips service does
 * in-process, on one thread, with no operation cache.
 *
 * Usage: vips-reference FILE RUNS LARGE MEDIUM SMALL [OUTDIR]
 *
 * Reads FILE into memory once, makes the thumbnails once untimed (warm-up),
 * then RUNS times, each timed on its own:
 *   - vips_thumbnail_buffer to a LARGE x LARGE box (shrink-on-load for JPEG,
 *     never enlarging), copied to memory so that it is computed only once;
 *   - vips_resize of that to the MEDIUM box and to the SMALL box;
 *   - vips_jpegsave_buffer of all three at Q=85, metadata stripped.
 * Prints each run's milliseconds, one per line. With OUTDIR, also writes the
 * last run's thumbnails there as large.jpg, medium.jpg and small.jpg, after
 * its clock stopped.
 *
 * scripts/bench compiles it with: cc bench/vips_reference.c $(pkg-config --cflags --libs vips)
 */

#include <stdio.h>
#include <stdlib.h>

#include <vips/vips.h>

#define SIZES 3
static const char *size_names[SIZES] = { "large", "medium", "small" };

/* The longest side fits the box, the aspect ratio is kept, nothing is
 * enlarged and no side is 0: the rule of thumbq's Sizes::fit, rounding alike.
 */
static void
fit_within( int box, int width, int height, int *out_width, int *out_height )
{
	int longest = VIPS_MAX( width, height );

	if( longest <= box ) {
		*out_width = width;
		*out_height = height;
		return;
	}
	*out_width = VIPS_MAX( 1, (int) (((gint64) width * box + longest / 2) / longest) );
	*out_height = VIPS_MAX( 1, (int) (((gint64) height * box + longest / 2) / longest) );
}

/* Makes the three thumbnails of buffer into saved[], largest first. */
static void
make_thumbnails( void *buffer, size_t length, const int boxes[SIZES],
	void *saved[SIZES], size_t saved_length[SIZES] )
{
	VipsImage *thumbnail;
	VipsImage *large;
	int i;

	if( vips_thumbnail_buffer( buffer, length, &thumbnail, boxes[0],
		"height", boxes[0],
		"size", VIPS_SIZE_DOWN,
		NULL ) )
		vips_error_exit( "thumbnail" );
	/* Without this, every save below would decode the file again: the
	 * cache is off and libvips images are lazy.
	 */
	if( !(large = vips_image_copy_memory( thumbnail )) )
		vips_error_exit( "copy to memory" );
	g_object_unref( thumbnail );

	for( i = 0; i < SIZES; i++ ) {
		VipsImage *image;
		int width, height;

		fit_within( boxes[i], large->Xsize, large->Ysize, &width, &height );
		if( i == 0 || (width == large->Xsize && height == large->Ysize) )
			image = large, g_object_ref( image );
		else if( vips_resize( large, &image,
			(double) width / large->Xsize,
			"vscale", (double) height / large->Ysize,
			NULL ) )
			vips_error_exit( "resize" );
		if( vips_jpegsave_buffer( image, &saved[i], &saved_length[i],
			"Q", 85,
			"strip", TRUE,
			NULL ) )
			vips_error_exit( "jpegsave" );
		g_object_unref( image );
	}
	g_object_unref( large );
}

static void
free_thumbnails( void *saved[SIZES] )
{
	int i;

	for( i = 0; i < SIZES; i++ )
		g_free( saved[i] );
}

int
main( int argc, char **argv )
{
	gchar *buffer;
	gsize length;
	int runs, boxes[SIZES];
	void *saved[SIZES];
	size_t saved_length[SIZES];
	int run, i;

	if( VIPS_INIT( argv[0] ) )
		vips_error_exit( NULL );
	if( argc != 6 && argc != 7 )
		vips_error_exit( "usage: %s FILE RUNS LARGE MEDIUM SMALL [OUTDIR]", argv[0] );
	runs = atoi( argv[2] );
	for( i = 0; i < SIZES; i++ )
		boxes[i] = atoi( argv[3 + i] );
	if( runs < 1 || boxes[0] < 1 || boxes[1] < 1 || boxes[2] < 1 )
		vips_error_exit( "RUNS and the boxes must be positive" );
	vips_concurrency_set( 1 );
	vips_cache_set_max( 0 );
	if( !g_file_get_contents( argv[1], &buffer, &length, NULL ) )
		vips_error_exit( "cannot read %s", argv[1] );

	make_thumbnails( buffer, length, boxes, saved, saved_length );
	free_thumbnails( saved );
	for( run = 0; run < runs; run++ ) {
		gint64 started = g_get_monotonic_time();

		make_thumbnails( buffer, length, boxes, saved, saved_length );
		printf( "%.3f\n", (g_get_monotonic_time() - started) / 1000.0 );
		if( run == runs - 1 && argc == 7 )
			for( i = 0; i < SIZES; i++ ) {
				char *path = g_strdup_printf( "%s/%s.jpg", argv[6], size_names[i] );

				if( !g_file_set_contents( path, saved[i], saved_length[i], NULL ) )
					vips_error_exit( "cannot write %s", path );
				g_free( path );
			}
		free_thumbnails( saved );
	}

	g_free( buffer );
	vips_shutdown();

	return( 0 );
}
