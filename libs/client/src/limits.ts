/** Most distinct backbone outputs one Embed stream may request (`EmbedStart.outputs`). */
export const MAX_FEATURE_OUTPUTS = 16;

/** Most heads one AnalyzeStudy may name (`AnalyzeStudyStart.heads`). */
export const MAX_STUDY_HEADS = 32;
