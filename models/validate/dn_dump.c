/* Runs Debian's (pjreddie) libdarknet on a cfg/weights pair and dumps what we compare against.
 *
 *   dn_dump CFG WEIGHTS IMAGE THRESH OUTDIR
 *
 * Writes OUTDIR/input.f32   the letterboxed network input darknet built from IMAGE (CHW, RGB 0..1)
 *        OUTDIR/yolo_K.f32  the raw output of the layer feeding the K-th [yolo] layer for that input
 * and prints darknet's own detections (get_network_boxes + do_nms_sort 0.45) as JSON lines:
 *   {"class_id":k,"confidence":p,"bbox":[x1,y1,x2,y2]}  (source-image pixels)
 */
#include <stdio.h>
#include <stdlib.h>
#include <darknet.h>

static void dump(const char *dir, const char *name, const float *p, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof(float), n, f) != (size_t)n) { perror(path); exit(1); }
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: dn_dump CFG WEIGHTS IMAGE THRESH OUTDIR\n"); return 2; }
    float thresh = atof(argv[4]);
    network *net = load_network(argv[1], argv[2], 0);
    set_batch_network(net, 1);
    image im = load_image_color(argv[3], 0, 0);
    image sized = letterbox_image(im, net->w, net->h);
    dump(argv[5], "input.f32", sized.data, sized.w * sized.h * sized.c);
    network_predict(net, sized.data);
    int k = 0, classes = 0;
    for (int i = 0; i < net->n; ++i) {
        if (net->layers[i].type != YOLO) continue;
        layer p = net->layers[i - 1];
        char name[64];
        snprintf(name, sizeof name, "yolo_%d.f32", k++);
        dump(argv[5], name, p.output, p.outputs);
        classes = net->layers[i].classes;
    }
    int nboxes = 0;
    detection *dets = get_network_boxes(net, im.w, im.h, thresh, .5, 0, 1, &nboxes);
    do_nms_sort(dets, nboxes, classes, .45);
    for (int i = 0; i < nboxes; ++i) {
        box b = dets[i].bbox;
        for (int j = 0; j < classes; ++j) {
            if (dets[i].prob[j] > thresh) {
                printf("{\"class_id\":%d,\"confidence\":%.6f,\"bbox\":[%.3f,%.3f,%.3f,%.3f]}\n", j,
                       dets[i].prob[j], (b.x - b.w / 2) * im.w, (b.y - b.h / 2) * im.h,
                       (b.x + b.w / 2) * im.w, (b.y + b.h / 2) * im.h);
            }
        }
    }
    free_detections(dets, nboxes);
    return 0;
}
