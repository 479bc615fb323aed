/**
 * "Attach file": a hidden multi-file picker behind a visible button, shared by the chat and the
 * room screens (dropping and pasting files are the screens' own). The picker is cleared after each
 * choice, so choosing the same file again sends it again.
 */
export function AttachFile(props: { disabled: boolean; title: string; onFiles: (files: File[]) => void }) {
  let picker!: HTMLInputElement;
  return (
    <div class="attach">
      <input
        type="file"
        multiple
        class="sr-only"
        tabIndex={-1}
        aria-hidden="true"
        data-testid="attach-input"
        ref={picker}
        onChange={(e) => {
          props.onFiles([...(e.currentTarget.files ?? [])]);
          e.currentTarget.value = "";
        }}
      />
      <button
        type="button"
        data-testid="attach-button"
        disabled={props.disabled}
        onClick={() => picker.click()}
        title={props.title}
      >
        Attach file
      </button>
    </div>
  );
}
